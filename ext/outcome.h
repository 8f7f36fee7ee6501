/* ---- trajectories in lanes ---------------------------------------------------------------------- */

/* The bookkeeping of the DS_LANES trajectories in flight (double lanes in groups, precision.h; see descentsim.outcome).
 * Lane k is entry k % DS_GROUP_LANES of group k / DS_GROUP_LANES. */
typedef struct {
    ptrdiff_t point[DS_LANES]; /* grid point of each lane, −1 when the lane is idle */
    dmask t[DS_GROUPS];         /* step of each lane */
    dmask active[DS_GROUPS];
    dmask below[DS_GROUPS];     /* steps in a row up to t with L <= converge_loss, from converge_from on */
    dvec loss0[DS_GROUPS], loss_sum[DS_GROUPS], sum_v[DS_GROUPS], sum_inv[DS_GROUPS], last_sum[DS_GROUPS],
        window_max[DS_GROUPS], window_min[DS_GROUPS];
} DS_NAME(ds_lanes);

#define LANE(field, k) (s->field[(k) / DS_GROUP_LANES][(k) % DS_GROUP_LANES])

/* Lane k starts point `point` (or idles, holding zeros, when point < 0). */
DS_INLINE void DS_NAME(ds_begin)(DS_NAME(ds_lanes) *s, const ds_problem *pb, ptrdiff_t k, ptrdiff_t point,
                                 DS_T *th, DS_T *c, DS_T *hyper, DS_T *state, DS_T *scale)
{
    const ptrdiff_t row = point >= 0 ? point : 0;
    const DS_T *theta0 = (const DS_T *)pb->theta0 + row * ds_params(pb);
    const DS_T *consts = (const DS_T *)pb->consts + row * pb->n_consts;
    const DS_T *hyper0 = (const DS_T *)pb->hyper + row * pb->n_hyper;
    ptrdiff_t i;
    s->point[k] = point;
    LANE(active, k) = point >= 0 ? -1 : 0;
    LANE(t, k) = LANE(below, k) = 0;
    LANE(loss0, k) = LANE(loss_sum, k) = LANE(sum_v, k) = LANE(sum_inv, k) = LANE(last_sum, k) = 0;
    LANE(window_max, k) = -DS_INFINITY;
    LANE(window_min, k) = DS_INFINITY;
    for (i = 0; i < pb->p; i++)
        th[i * DS_LANES + k] = point >= 0 ? ds_param_value(pb, theta0, 0, i, 0) : 0;
    for (i = 0; i < pb->n_consts; i++)
        c[i * DS_LANES + k] = point >= 0 ? consts[i] : 0;
    for (i = 0; i < pb->n_hyper; i++)
        hyper[i * DS_LANES + k] = point >= 0 ? hyper0[i] : 0;
    for (i = 0; i < pb->p; i++)
        scale[i * DS_LANES + k] =
            pb->lr_scale == NULL ? 1 : ds_param_value(pb, ((const DS_T *)pb->lr_scale), row * ds_params(pb), i, 1);
    for (i = 0; i < ds_state_vectors(pb->optimizer, pb->p); i++)
        state[i * DS_LANES + k] = 0;
    if (pb->optimizer == DS_ADAM || pb->optimizer == DS_ADAMW) /* the bias-correction products start at 1 */
        state[2 * pb->p * DS_LANES + k] = state[(2 * pb->p + 1) * DS_LANES + k] = 1;
}

/* CYCLING, STUCK or UNRESOLVED for lane k once its budget is spent: the smallest lag that repeats θ,
 * else a plateau, else unresolved. history[(lag·p + i)·DS_LANES + k] = θ_i at step steps − lag. */
DS_INLINE void DS_NAME(ds_classify_end)(const DS_NAME(ds_lanes) *s, const ds_problem *pb,
                                        const ds_rules *rules, ptrdiff_t k, const DS_T *th,
                                        const DS_T *history, unsigned char *outcome, int *period)
{
    const ptrdiff_t p = pb->p;
    double biggest = 0, gap, v, tol;
    ptrdiff_t i, lag;
    *period = 0;
    for (i = 0; i < p; i++)
        biggest = fabs(th[i * DS_LANES + k]) > biggest ? fabs(th[i * DS_LANES + k]) : biggest;
    biggest = ds_group_max(pb, biggest);
    tol = rules->cycle_tol * (1 + biggest);
    for (lag = 1; lag <= rules->k_max; lag++) {
        gap = 0;
        for (i = 0; i < p; i++) {
            v = fabs((double)th[i * DS_LANES + k] - (double)history[(lag * p + i) * DS_LANES + k]);
            gap = v > gap ? v : gap;
        }
        gap = ds_group_max(pb, gap);
        if (gap <= tol) {
            *period = (int)lag;
            break;
        }
    }
    if (*period >= 2) {
        *outcome = DS_CYCLING;
        return;
    }
    *period = 0;
    *outcome = LANE(window_max, k) - LANE(window_min, k) <= rules->stuck_tol * LANE(window_max, k)
                   ? DS_STUCK
                   : DS_UNRESOLVED;
}

/* Write the fields of lane k, decided at step T = t with loss L_T; the score holds v_T for the steps
 * T..steps−1 it did not run. */
DS_INLINE void DS_NAME(ds_finish)(const DS_NAME(ds_lanes) *s, const ds_rules *rules, ptrdiff_t k, double loss,
                                  double batch_loss, unsigned char outcome, int period, int attractor,
                                  double accuracy, signed char collapsed, short classes_predicted,
                                  const ds_outputs *out)
{
    const ptrdiff_t t = LANE(t, k), steps = rules->steps, i = s->point[k];
    const double loss0 = LANE(loss0, k);
    const double final_v = ds_clip_ratio(loss0 == 0 ? 0.0 : loss / loss0);
    const double held = (double)(steps - t);
    const double held_last = (double)(steps - (t > rules->last_start ? t : rules->last_start));
    const double total = LANE(sum_v, k) + held * final_v;
    const double last_mean = (LANE(last_sum, k) + held_last * final_v) /
                             (double)(steps > rules->last_start ? steps - rules->last_start : 1);
    if (steps > 0 && last_mean < 1)
        out->score[i] = -total;
    else
        out->score[i] = LANE(sum_inv, k) + held / (final_v > 1 / DS_SCORE_CLIP ? final_v : 1 / DS_SCORE_CLIP);
    out->outcome[i] = outcome;
    out->steps[i] = (int)t;
    out->final_loss[i] = loss;
    out->loss_sum[i] = LANE(loss_sum, k);
    out->period[i] = period;
    out->attractor[i] = attractor;
    out->accuracy[i] = accuracy;
    out->collapsed[i] = collapsed;
    out->batch_loss[i] = batch_loss;
    out->classes_predicted[i] = classes_predicted;
}

/* The recorded curves of the lanes in flight at their step t (before update t): L_t, θ_t, and the accuracy
 * at multiples of the stride (ds_outputs). */
DS_INLINE void DS_NAME(ds_record)(const DS_NAME(ds_lanes) *s, const ds_problem *pb, const ds_rules *rules,
                                  const DS_T *th, const DS_T *c, const dvec *losses, DS_T *work, const ds_outputs *out)
{
    const ptrdiff_t p = pb->p, length = rules->steps + 1, marks = rules->steps / out->stride + 1;
    ptrdiff_t k, i;
    for (k = 0; k < DS_LANES; k++) {
        const ptrdiff_t row = s->point[k], t = (ptrdiff_t)LANE(t, k);
        if (row < 0)
            continue;
        if (ds_writes(pb))
            out->loss_path[row * length + t] = losses[k / DS_GROUP_LANES][k % DS_GROUP_LANES];
        for (i = 0; out->theta_path != NULL && i < p; i++)
            ds_param_store(pb, out->theta_path, row * length + t, p, i, th[i * DS_LANES + k]);
        if (out->accuracy_path != NULL && t % out->stride == 0) {
            double accuracy = DS_NAN;
            signed char collapsed = -1;
            short classes = -1;
            DS_NAME(ds_evaluate)(pb, th, c, k, work, &accuracy, &collapsed, &classes);
            if (ds_writes(pb))
                out->accuracy_path[row * marks + t / out->stride] = accuracy;
        }
    }
}
