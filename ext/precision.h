/* The types and constants of one precision, DS_PRECISION 32 or 64 (included by trajectory.h once per precision,
 * no include guard; precision_end.h undefines it all):
 *
 *   DS_T, DS_MASK_T   the float type and the integer type as wide
 *   DS_NAME(f)        this precision's copy of f
 *   DS_TINY, DS_SQRT, DS_EXPONENT_BIAS, DS_MANTISSA_BITS, and descentsim.numerics' per-precision constants
 *   vec, vmask        DS_LANES trajectories (lanes.h), dvec, dmask their bookkeeping in double, in groups of
 *                     DS_GROUP_LANES lanes (DS_GROUPS of them)
 *   vload, vstore     a vector from / to DS_LANES consecutive values
 *   vselect, dselect  a where m, else b
 */
#if DS_PRECISION == 32
#define DS_T float
#define DS_MASK_T int
#define DS_NAME(name) name##_f32
#define DS_TINY 1.17549435082228750797e-38F /* FLT_MIN */
#define DS_SQRT sqrtf
#define DS_EXPONENT_BIAS 127
#define DS_MANTISSA_BITS 23
/* descentsim.numerics' per-precision constants: EXP_RANGE, SIN_COS_PIO2, SIN_COS_MAX */
#define DS_EXP_LOW (-104.0)
#define DS_EXP_HIGH 89.0
#define DS_PIO2_1 1.5703125
#define DS_PIO2_2 4.837512969970703125e-4
#define DS_PIO2_3 7.54978995489188216e-8
#define DS_SIN_COS_MAX 32768.0
#elif DS_PRECISION == 64
#define DS_T double
#define DS_MASK_T long long
#define DS_NAME(name) name##_f64
#define DS_TINY 2.2250738585072013830902e-308 /* DBL_MIN */
#define DS_SQRT sqrt
#define DS_EXPONENT_BIAS 1023
#define DS_MANTISSA_BITS 52
#define DS_EXP_LOW (-746.0)
#define DS_EXP_HIGH 710.0
#define DS_PIO2_1 1.57079625129699707031e0
#define DS_PIO2_2 7.54978941586159635335e-8
#define DS_PIO2_3 5.39030285815811905290e-15
#define DS_SIN_COS_MAX 536870912.0
#else
#error "DS_PRECISION must be 32 or 64"
#endif

#define vec DS_NAME(ds_vec)
#define vmask DS_NAME(ds_vmask)
#define dvec DS_NAME(ds_dvec)
#define dmask DS_NAME(ds_dmask)

#if defined(DS_ONE_LANE)
#define DS_LANES 1
#define DS_GROUP_LANES 1
typedef ds_lane1<DS_T, DS_MASK_T> vec;
typedef ds_mask1<DS_T, DS_MASK_T> vmask;
typedef ds_lane1<double, long long> dvec;
typedef ds_mask1<double, long long> dmask;

DS_INLINE vec DS_NAME(ds_load)(const DS_T *p)
{
    vec v = {*p};
    return v;
}

DS_INLINE void DS_NAME(ds_store)(DS_T *p, vec v) { *p = v.v; }

DS_INLINE vec DS_NAME(ds_select)(vmask m, vec a, vec b) { return m.v ? a : b; }

DS_INLINE dvec DS_NAME(ds_dselect)(dmask m, dvec a, dvec b) { return m.v ? a : b; }

DS_INLINE int DS_NAME(ds_any)(dmask m) { return m.v != 0; }

/* group q of v's lanes, in double */
DS_INLINE dvec DS_NAME(ds_group_double)(vec v, ptrdiff_t q)
{
    dvec r = {(double)v.v};
    (void)q;
    return r;
}

/* the lanes' mask from the masks of their groups */
DS_INLINE vmask DS_NAME(ds_join_groups)(const dmask *groups)
{
    vmask r = {(DS_MASK_T)groups[0].v};
    return r;
}
#else
/* trajectories run in the lanes of DS_VECTOR_BYTES-byte SIMD vectors (lanes.h): 8 in float, 4 in double at 32
 * bytes; the bookkeeping in quads of 4 double lanes, one 32-byte vector each (DS_LANES / 4 quads) */
#define DS_LANES DS_LANES_OF(DS_T)
#define DS_GROUP_LANES 4
typedef DS_T vec __attribute__((vector_size(DS_VECTOR_BYTES)));
typedef DS_MASK_T vmask __attribute__((vector_size(DS_VECTOR_BYTES)));
typedef DS_T DS_NAME(ds_qvec) __attribute__((vector_size(4 * sizeof(DS_T))));
typedef DS_MASK_T DS_NAME(ds_qmask) __attribute__((vector_size(4 * sizeof(DS_T))));
typedef double dvec __attribute__((vector_size(32)));
typedef long long dmask __attribute__((vector_size(32)));

DS_INLINE vec DS_NAME(ds_load)(const DS_T *p)
{
    vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

DS_INLINE void DS_NAME(ds_store)(DS_T *p, vec v) { memcpy(p, &v, sizeof v); }

DS_INLINE vec DS_NAME(ds_select)(vmask m, vec a, vec b) { return (vec)((m & (vmask)a) | (~m & (vmask)b)); }

DS_INLINE dvec DS_NAME(ds_dselect)(dmask m, dvec a, dvec b) { return (dvec)((m & (dmask)a) | (~m & (dmask)b)); }

DS_INLINE int DS_NAME(ds_any)(dmask m) { return (m[0] | m[1] | m[2] | m[3]) != 0; }

DS_INLINE dvec DS_NAME(ds_group_double)(vec v, ptrdiff_t q)
{
    DS_NAME(ds_qvec) quad;
    memcpy(&quad, (const DS_T *)&v + 4 * q, sizeof quad);
    return __builtin_convertvector(quad, dvec);
}

DS_INLINE vmask DS_NAME(ds_join_groups)(const dmask *groups)
{
    DS_NAME(ds_qmask) quads[DS_LANES / 4];
    vmask m;
    ptrdiff_t q;
    for (q = 0; q < DS_LANES / 4; q++)
        quads[q] = __builtin_convertvector(groups[q], DS_NAME(ds_qmask));
    memcpy(&m, quads, sizeof m);
    return m;
}
#endif
#define DS_GROUPS (DS_LANES / DS_GROUP_LANES)

/* adding and taking away 1.5·2^mantissa rounds to the nearest integer (ties to even) and leaves it in
 * the low bits; taken away from a value's bits, it turns a small integer's bits back into the value */
#define DS_ROUND_MAGIC ((DS_T)1.5 * (DS_T)((DS_MASK_T)1 << DS_MANTISSA_BITS))

#define vload DS_NAME(ds_load)
#define vstore DS_NAME(ds_store)
#define vselect DS_NAME(ds_select)
#define dselect DS_NAME(ds_dselect)
