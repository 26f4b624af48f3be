#ifndef PGAN_CPNG_SHIM_H
#define PGAN_CPNG_SHIM_H
/* libpng's simplified API (png_image_*) reports errors through return values, never longjmp, so Swift can call it. */
#include <png.h>
#endif
