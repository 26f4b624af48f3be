#ifndef PGAN_CZLIB_SHIM_H
#define PGAN_CZLIB_SHIM_H
#include <zlib.h>
#endif
