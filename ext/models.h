#ifndef DS_MODELS_COMMON
#define DS_MODELS_COMMON
/* Model work space per trajectory, in vectors of lanes. The network: a_0 … a_{L−1} and z_1 … z_L (each at most
 * the weights), two error buffers (<= 2·p); with one hidden layer, its pre-activations, activations and errors
 * for DS_NET_POINTS samples (the width n_1 <= p/(n_0 + 1), the data's rows) and their inputs (n_0 < the data's
 * rows each). The formula: one register per instruction of the program (the data's rows). */
DS_INLINE ptrdiff_t ds_model_vectors(int model, ptrdiff_t p, ptrdiff_t data_rows)
{
#if defined(DS_COOP) /* the cooperative kernels' per-sample values are arrays of constant sizes (coop.h) */
    (void)model;
    (void)p;
    (void)data_rows;
    return 0;
#endif
    switch (model) {
    case DS_NETWORK:
        return 4 * p + DS_NET_POINTS * (3 * (p / data_rows) + data_rows);
    case DS_FORMULA:
        return data_rows;
    default:
        return 0;
    }
}
#endif

DS_INLINE vec DS_NAME(ds_loss_grad)(const ds_problem *pb, const DS_T *th, DS_T *g, const DS_T *c, DS_T *work,
                                     const uint64_t *keys)
{
#if defined(DS_COOP) /* the cooperative kernel: a group of threads a dense network (coop.h) */
    (void)work;
    return DS_NAME(ds_coop_network)(pb, th, g, c, keys);
#else
    switch (pb->model) {
    case DS_QUADRATIC:
        return DS_NAME(ds_quadratic)(th, g, c);
    case DS_DOUBLE_WELL:
        return DS_NAME(ds_double_well)(th, g);
    case DS_UV:
        return DS_NAME(ds_uv)(th, g, c, pb->p);
    case DS_FORMULA:
        return DS_NAME(ds_formula)(pb, th, g, c, work);
    case DS_NETWORK:
        return DS_NAME(ds_network)(pb, th, g, c, work, keys);
    default:
        return DS_NAME(ds_relu_neuron)(pb, th, g, keys);
    }
#endif
}

/* The full-data loss L(θ) over the first eval_count samples, forward passes alone: what the outcome rules
 * judge when the gradient is a minibatch's (models with data only). */
DS_INLINE vec DS_NAME(ds_loss_full)(const ds_problem *pb, const DS_T *th, const DS_T *c, DS_T *work)
{
#if defined(DS_COOP)
    (void)work;
    return DS_NAME(ds_coop_network)(pb, th, NULL, c, NULL);
#else
    switch (pb->model) {
    case DS_NETWORK:
        return DS_NAME(ds_network)(pb, th, NULL, c, work, NULL);
    default:
        return DS_NAME(ds_relu_neuron)(pb, th, NULL, NULL);
    }
#endif
}

/* classifiers: accuracy, collapse and classes predicted of lane k's network (other models leave NaN, −1, −1) */
DS_INLINE void DS_NAME(ds_evaluate)(const ds_problem *pb, const DS_T *th, const DS_T *c, ptrdiff_t k, DS_T *work,
                                    double *accuracy, signed char *collapsed, short *classes_predicted)
{
#if defined(DS_COOP)
    (void)k;
    (void)work;
    DS_NAME(ds_coop_evaluate)(pb, th, c, accuracy, collapsed, classes_predicted);
#else
    if (pb->model == DS_NETWORK)
        DS_NAME(ds_network_evaluate)(pb, th, c, k, work, accuracy, collapsed, classes_predicted);
#endif
}

/* index of the minimum a converged trajectory reached: double-well 0 for w = −1, 1 for w = +1 */
DS_INLINE int DS_NAME(ds_attractor)(int model, DS_T w) { return model == DS_DOUBLE_WELL ? (w > 0 ? 1 : 0) : -1; }
