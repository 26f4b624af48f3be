#include "stop_signals.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

// Written only by the handler; a sig_atomic_t is the one type C lets a handler and the program share.
static volatile sig_atomic_t received_signal = 0;

static void on_stop_signal(int signal_number) {
    if (received_signal != 0) {
        _exit(128 + signal_number);
    }
    received_signal = signal_number;
    static const char message[] =
        "\npgan: stopping after the steps in flight and writing a checkpoint (signal again to stop at once)\n";
    ssize_t ignored = write(2, message, sizeof message - 1);
    (void)ignored;
}

void pgan_catch_stop_signals(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
}

int pgan_stop_signal(void) {
    return received_signal;
}
