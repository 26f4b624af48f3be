#ifndef PGAN_STOP_SIGNALS_H
#define PGAN_STOP_SIGNALS_H

/// Catches SIGINT and SIGTERM for a graceful stop: the first one is only recorded (and a line printed to stderr),
/// so the trainer can finish the steps in flight and write a checkpoint; a second one ends the process at once with
/// status 128 + signal, as an uncaught signal would report it to a shell.
void pgan_catch_stop_signals(void);

/// The first stop signal received (SIGINT or SIGTERM), or 0.
int pgan_stop_signal(void);

#endif
