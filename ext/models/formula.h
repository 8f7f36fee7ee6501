#ifndef DS_FORMULA_COMMON
#define DS_FORMULA_COMMON
/* The formula model's operations (descentsim.formula.OPS, in this order): instruction k of the program writes
 * register k from registers a, b (or parameter/knob a, or its literal) */
enum {
    DS_OP_CONST, DS_OP_PARAM, DS_OP_KNOB, DS_OP_COPY, DS_OP_ADD, DS_OP_SUB, DS_OP_MUL, DS_OP_DIV, DS_OP_NEG,
    DS_OP_SQRT, DS_OP_ABS, DS_OP_SIGN, DS_OP_SIN, DS_OP_COS, DS_OP_EXP, DS_OP_LOG, DS_OP_TANH
};
#endif

/* The formula model (per precision: included by trajectory.h, see precision.h; no include guard) */

/* the formula model (descentsim.formula): its program is the data, one instruction (op, a, b, literal) a row;
 * instruction k writes register k (work, one vector each) from registers a and b, parameter a (θ), knob a (c) or
 * its literal, with the operations of descentsim.numerics. The last p + 1 registers are L and ∇L. */
DS_INLINE vec DS_NAME(ds_formula)(const ds_problem *pb, const DS_T *th, DS_T *g, const DS_T *c, DS_T *r)
{
    const DS_T *code = (const DS_T *)pb->data;
    const ptrdiff_t length = pb->data_rows, p = pb->p;
    const vec zero = {0};
    ptrdiff_t k, i;
    for (k = 0; k < length; k++) {
        const DS_T *ins = code + 4 * k;
        const ptrdiff_t a = (ptrdiff_t)ins[1], b = (ptrdiff_t)ins[2];
        const vec x = vload(r + (a < k ? a : 0) * DS_LANES), y = vload(r + (b < k ? b : 0) * DS_LANES);
        vec v;
        switch ((int)ins[0]) {
        case DS_OP_CONST: v = zero + ins[3]; break;
        case DS_OP_PARAM: v = vload(th + a * DS_LANES); break;
        case DS_OP_KNOB: v = vload(c + a * DS_LANES); break;
        case DS_OP_ADD: v = x + y; break;
        case DS_OP_SUB: v = x - y; break;
        case DS_OP_MUL: v = x * y; break;
        case DS_OP_DIV: v = x / y; break;
        case DS_OP_NEG: v = -x; break;
        case DS_OP_SQRT: v = DS_NAME(ds_sqrt)(x); break;
        case DS_OP_ABS: v = DS_NAME(ds_abs)(x); break;
        case DS_OP_SIGN: v = vselect(x > zero, zero + 1, vselect(x < zero, zero - 1, x)); break;
        case DS_OP_SIN: v = DS_NAME(ds_sin)(x); break;
        case DS_OP_COS: v = DS_NAME(ds_cos)(x); break;
        case DS_OP_EXP: v = DS_NAME(ds_exp)(x); break;
        case DS_OP_LOG: v = DS_NAME(ds_log)(x); break;
        case DS_OP_TANH: v = DS_NAME(ds_tanh)(x); break;
        default: v = x; break; /* DS_OP_COPY */
        }
        vstore(r + k * DS_LANES, v);
    }
    for (i = 0; g != NULL && i < p; i++)
        vstore(g + i * DS_LANES, vload(r + (length - p + i) * DS_LANES));
    return vload(r + (length - p - 1) * DS_LANES);
}
