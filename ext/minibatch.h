/* Minibatches and samples of the data (per precision: included by trajectory.h, see precision.h; no include guard) */

/* the sample at position j of a lane's minibatch, from the lane's key of this step (ds_train_points sets
 * it): mix(key + j) mod samples, or (key + j) mod samples in sequential order, where key = t·batch_size */
DS_INLINE ptrdiff_t DS_NAME(ds_batch_index)(const ds_problem *pb, uint64_t key, ptrdiff_t j)
{
    const uint64_t at = key + (uint64_t)j;
    return (ptrdiff_t)((pb->batch_sequential ? at : ds_mix(at)) % (uint64_t)pb->samples);
}

/* The samples at position n of the lanes' minibatches (written to index, which is returned), or NULL for the
 * full data (batch = 0), where position n is sample n for every lane (ds_sample). */
DS_INLINE const ptrdiff_t *DS_NAME(ds_lane_samples)(const ds_problem *pb, const uint64_t *keys, ptrdiff_t batch,
                                                    ptrdiff_t n, ptrdiff_t *index)
{
    ptrdiff_t k;
    if (batch == 0)
        return NULL;
    for (k = 0; k < DS_LANES; k++)
        index[k] = DS_NAME(ds_batch_index)(pb, keys[k], n);
    return index;
}

/* value of data row `row` at sample n (all lanes), or at each lane's own sample index[k] (minibatches) */
DS_INLINE vec DS_NAME(ds_sample)(const DS_T *row, ptrdiff_t n, const ptrdiff_t *index)
{
    vec v = {0};
    ptrdiff_t k;
    if (index == NULL)
        return v + row[n];
    for (k = 0; k < DS_LANES; k++)
        v[k] = row[index[k]];
    return v;
}
