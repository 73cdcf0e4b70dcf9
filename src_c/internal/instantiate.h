// instantiate.h - compiles the body NN_IMPL (a *_impl.h written once with T and NN_T) for
// float and for double:   #define NN_IMPL "dense_impl.h"   then   #include "instantiate.h"
// NN_F32 is 1 in the float body, for the code only it has (the bfloat16 products).
#define T float
#define SUF f32
#define NN_F32 1
#include NN_IMPL
#undef T
#undef SUF
#undef NN_F32

#define T double
#define SUF f64
#define NN_F32 0
#include NN_IMPL
#undef T
#undef SUF
#undef NN_F32
#undef NN_IMPL
