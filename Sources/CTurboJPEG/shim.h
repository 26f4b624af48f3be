#ifndef PGAN_CTURBOJPEG_SHIM_H
#define PGAN_CTURBOJPEG_SHIM_H
/* libjpeg-turbo's TurboJPEG API reports errors through return values (libjpeg's own API longjmps). */
#include <turbojpeg.h>
#endif
