/* Trajectories in one precision (DS_PRECISION 32 or 64), DS_LANES at a time: included by kernels.h (the CPU
 * engine's SIMD lanes) and gpu_kernels.cu (the GPU engine's one lane per thread) once per precision, no include
 * guard. The maths lives in one header per concern, each used by both engines:
 *
 *   lanes.h, precision.h   the lane abstraction and this precision's types
 *   problem.h              kernel ids, the group of trajectories, the rules' thresholds, the output fields
 *   numerics.h             tanh, exp, log, sin, cos from + − × ÷ (descentsim.numerics)
 *   minibatch.h            minibatches and samples of the data
 *   models/<model>.h       one model a file: L(θ) and ∇L(θ)
 *   coop.h                 the GPU's cooperative layout (a group of threads a network; DS_COOP builds only)
 *   models.h               the models by kernel id
 *   optimizers.h           the updates of descentsim.optimizers
 *   outcome.h              the outcome bookkeeping (descentsim.outcome)
 *
 * Each lane holds one trajectory and computes exactly what the scalar definition (the NumPy reference) computes,
 * operation for operation: lanes never mix. Parameters, gradients and per-point constants live lane-major (value i
 * of lane k at [i·DS_LANES + k]); the outcome bookkeeping runs in double-precision lanes. A lane whose trajectory is
 * decided takes the next point.
 */
#include "problem.h"
#include "precision.h"
#include "numerics.h"
#include "minibatch.h"
#include "models/quadratic.h"
#include "models/uv.h"
#include "models/relu_neuron.h"
#include "models/formula.h"
#include "models/network.h"
#if defined(DS_COOP)
#include "coop.h"
#endif
#include "models.h"
#include "optimizers.h"
#include "outcome.h"

#ifndef DS_WORK_COMMON
#define DS_WORK_COMMON
/* Work space of one thread, in vectors of lanes (ds_train_points_with carves it): θ, ∇L and the learning-rate
 * scales (p each), constants, hyperparameters and optimiser state (ds_state_space); then the model's work space and
 * k_max + 1 past θ. */
DS_INLINE ptrdiff_t ds_state_space(int optimizer, ptrdiff_t p, ptrdiff_t n_consts, ptrdiff_t n_hyper)
{
    return 3 * p + n_consts + n_hyper + ds_state_vectors(optimizer, p);
}

DS_INLINE ptrdiff_t ds_work_vectors(int model, int optimizer, ptrdiff_t p, ptrdiff_t n_consts, ptrdiff_t n_hyper,
                                    ptrdiff_t data_rows, ptrdiff_t k_max)
{
    return ds_state_space(optimizer, p, n_consts, n_hyper) + ds_model_vectors(model, p, data_rows) + (k_max + 1) * p;
}
#endif

/* Train points first..last−1 and classify them (descentsim.outcome has the rules), DS_LANES at a time. The work
 * space comes in two parts: `work`, ds_state_space(...) vectors for θ, ∇L, the constants, hyperparameters, learning-
 * rate scales and optimiser state, each at a fixed place (where the model's sizes are compile-time constants, as in
 * the GPU engine's specialised kernels, they can live in registers), and `memory`, ds_model_vectors(...) + (k_max +
 * 1)·p vectors for the model's work space and the past θ, indexed as the trajectory goes. */
DS_INLINE void DS_NAME(ds_train_points_with)(const ds_problem *pb, const ds_rules *rules, ptrdiff_t first,
                                             ptrdiff_t last, DS_T *work, DS_T *memory, const ds_outputs *out)
{
    const ptrdiff_t p = pb->p, steps = rules->steps;
    DS_T *th = work, *g = th + p * DS_LANES, *c = g + p * DS_LANES, *hyper = c + pb->n_consts * DS_LANES,
         *scale = hyper + pb->n_hyper * DS_LANES, *state = scale + p * DS_LANES, *work_model = memory,
         *history = work_model + ds_model_vectors(pb->model, p, pb->data_rows) * DS_LANES;
    DS_NAME(ds_lanes) lanes, *s = &lanes;
    ptrdiff_t next = first, k, i, q;
    const dvec dzero = {0};
    int running = 0;

    for (k = 0; k < DS_LANES; k++) {
        DS_NAME(ds_begin)(s, pb, k, next < last ? next : -1, th, c, hyper, state, scale);
        running += next < last;
        next += next < last;
    }
    while (running > 0) {
        uint64_t keys[DS_LANES];
        if (pb->batch_size > 0) /* this step's minibatch key of each lane */
            for (k = 0; k < DS_LANES; k++) {
                const ptrdiff_t row = s->point[k] >= 0 ? s->point[k] : 0;
                const uint64_t point = pb->batch_per_point ? (uint64_t)pb->point_id[row] : 0;
                keys[k] = pb->batch_sequential ? (uint64_t)LANE(t, k) * (uint64_t)pb->batch_size
                                               : ds_batch_key(pb->batch_seed, (uint64_t)LANE(t, k), point);
            }
        /* the gradient's loss (a minibatch's), and the full-data loss L_t that the rules judge */
        const vec batch_lanes = DS_NAME(ds_loss_grad)(pb, th, g, c, work_model, keys);
        const vec loss_lanes = pb->batch_size > 0 ? DS_NAME(ds_loss_full)(pb, th, c, work_model) : batch_lanes;
        dmask diverged[DS_GROUPS], converged[DS_GROUPS], decided[DS_GROUPS], going[DS_GROUPS];
        dvec losses[DS_GROUPS], batch_losses[DS_GROUPS];
        vmask go;
        int any_decided = 0;
        for (q = 0; q < DS_GROUPS; q++) {
            dmask live, end, go_q, window, under;
            dvec loss, ratio, v;
            batch_losses[q] = DS_NAME(ds_group_double)(batch_lanes, q);
            loss = losses[q] = DS_NAME(ds_group_double)(loss_lanes, q);
            s->loss0[q] = dselect(s->t[q] == 0, loss, s->loss0[q]);
            diverged[q] = s->active[q] & (((loss - loss) != 0) | ((loss > rules->diverge_factor * s->loss0[q]) &
                                                                  (s->t[q] >= rules->diverge_from)));
            under = (loss <= rules->converge_loss) & (s->t[q] >= rules->converge_from);
            s->below[q] = (s->below[q] - under) & under; /* one more where under (a mask is −1), else 0 */
            converged[q] = s->active[q] & ~diverged[q] & (s->below[q] >= rules->converge_window);
            live = s->active[q] & ~diverged[q] & ~converged[q];
            window = live & (s->t[q] >= rules->window_start);
            s->window_max[q] = dselect(window & (loss > s->window_max[q]), loss, s->window_max[q]);
            s->window_min[q] = dselect(window & (loss < s->window_min[q]), loss, s->window_min[q]);
            if (DS_NAME(ds_any)(live & (s->t[q] >= steps - rules->k_max)))
                for (k = DS_GROUP_LANES * q; k < DS_GROUP_LANES * (q + 1); k++)
                    if (live[k % DS_GROUP_LANES] && LANE(t, k) >= steps - rules->k_max)
                        for (i = 0; i < p; i++)
                            history[((steps - LANE(t, k)) * p + i) * DS_LANES + k] = th[i * DS_LANES + k];
            end = live & (s->t[q] == steps);
            go_q = live & ~end;
            decided[q] = diverged[q] | converged[q] | end;
            any_decided |= DS_NAME(ds_any)(decided[q]);

            ratio = dselect(s->loss0[q] == 0, dzero, loss / s->loss0[q]); /* 0 where L_0 = 0, for both sums */
            v = dselect(((ratio - ratio) != 0) | (ratio > DS_SCORE_CLIP), dzero + DS_SCORE_CLIP, ratio);
            s->loss_sum[q] = dselect(go_q, s->loss_sum[q] + ratio, s->loss_sum[q]);
            s->sum_v[q] = dselect(go_q, s->sum_v[q] + v, s->sum_v[q]);
            s->sum_inv[q] = dselect(go_q, s->sum_inv[q] + 1 / dselect(v > 1 / DS_SCORE_CLIP, v, dzero + 1 / DS_SCORE_CLIP),
                                    s->sum_inv[q]);
            s->last_sum[q] = dselect(go_q & (s->t[q] >= rules->last_start), s->last_sum[q] + v, s->last_sum[q]);
            going[q] = go_q;
        }
        go = DS_NAME(ds_join_groups)(going);
        if (out->loss_path != NULL)
            DS_NAME(ds_record)(s, pb, rules, th, c, losses, work_model, out);
        {
            vec lr = vload(hyper);
            if (pb->lr_factors != NULL) /* lanes are at different steps: lr·f(t) lane by lane */
                for (k = 0; k < DS_LANES; k++)
                    lr[k] = lr[k] * (DS_T)pb->lr_factors[LANE(t, k) < steps ? LANE(t, k) : 0]; /* t = steps: no update */
            DS_NAME(ds_optimizer_step)(pb, th, g, hyper, state, scale, lr, go);
#if defined(DS_COOP)
            DS_NAME(ds_coop_drift)(pb, th, c, go);
#else
            if (pb->model == DS_NETWORK)
                DS_NAME(ds_network_drift)(pb, th, c, go);
#endif
        }
        for (q = 0; q < DS_GROUPS; q++)
            s->t[q] = s->t[q] - going[q]; /* −1 where the lane went on */

        if (!any_decided)
            continue;
        for (k = 0; k < DS_LANES; k++) {
            unsigned char outcome = DS_UNRESOLVED;
            int period = 0, attractor = -1;
            double accuracy = DS_NAN;
            signed char collapsed = -1;
            short classes_predicted = -1;
            if (!decided[k / DS_GROUP_LANES][k % DS_GROUP_LANES])
                continue;
            if (diverged[k / DS_GROUP_LANES][k % DS_GROUP_LANES]) {
                outcome = DS_DIVERGED;
            } else if (converged[k / DS_GROUP_LANES][k % DS_GROUP_LANES]) {
                outcome = DS_CONVERGED;
                attractor = DS_NAME(ds_attractor)(pb->model, th[k]);
            } else {
                DS_NAME(ds_classify_end)(s, pb, rules, k, th, history, &outcome, &period);
            }
            DS_NAME(ds_evaluate)(pb, th, c, k, work_model, &accuracy, &collapsed, &classes_predicted);
            if (ds_writes(pb))
                DS_NAME(ds_finish)(s, rules, k, losses[k / DS_GROUP_LANES][k % DS_GROUP_LANES],
                                   batch_losses[k / DS_GROUP_LANES][k % DS_GROUP_LANES], outcome, period, attractor,
                                   accuracy, collapsed, classes_predicted, out);
            if (next < last) {
                DS_NAME(ds_begin)(s, pb, k, next++, th, c, hyper, state, scale);
            } else {
                DS_NAME(ds_begin)(s, pb, k, -1, th, c, hyper, state, scale);
                running--;
            }
        }
    }
}

/* ds_train_points_with on one work space of ds_work_vectors(...) vectors, the two parts one after the other. */
DS_ENTRY void DS_NAME(ds_train_points)(const ds_problem *pb, const ds_rules *rules, ptrdiff_t first, ptrdiff_t last,
                                       DS_T *work, const ds_outputs *out)
{
    DS_NAME(ds_train_points_with)(pb, rules, first, last, work,
                                  work + ds_state_space(pb->optimizer, pb->p, pb->n_consts, pb->n_hyper) * DS_LANES,
                                  out);
}

#include "precision_end.h"
