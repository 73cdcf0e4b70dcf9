// instantiate.h - compiles the body NN_IMPL (a *_impl.h written once with T and NN_T) for
// float and for double:   #define NN_IMPL "dense_impl.h"   then   #include "instantiate.h"
#define T float
#define SUF f32
#include NN_IMPL
#undef T
#undef SUF

#define T double
#define SUF f64
#include NN_IMPL
#undef T
#undef SUF
#undef NN_IMPL
