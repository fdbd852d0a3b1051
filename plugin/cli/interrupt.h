// Ctrl-C, SIGTERM and SIGHUP: the first one cancels generation so that ditgen unwinds and removes
// its partial output; a third one (a second may come from the same event, sent to the process and
// to its group) removes the temporaries at once and exits.
//
// The handler only writes the signal number into a pipe (libraries may have started threads before
// main, so any thread can take the signal); a watcher thread reads it and reacts as ordinary code,
// since ds_cancel and file removal are not async-signal-safe.
#pragma once

#include "ditstream.h"

namespace ditgen::interrupt {

// Call first in main().
void install();
// The generator the first signal cancels; nullptr before it is destroyed.
void set_target(ds_generator* gen);
// The first signal received (SIGINT, SIGTERM, SIGHUP), or 0.
int received();

}  // namespace ditgen::interrupt
