/*
 * Models by name: the config's "models" section maps a name such as
 * "text-embedding" to a provider, a local plugin operation or a SageMaker
 * endpoint with its request and response shape, so `mmpipe.embed(name, x)`
 * works unchanged whichever serves it. The Lua side (core/lua/api.c) does
 * the calling; this checks the section at start-up. Main thread.
 */
#ifndef MMP_MODELS_H
#define MMP_MODELS_H

#include "config/config.h"

/* Returns 0, or -1 with errstr naming the key path. */
int mmp_models_check(const mmp_config_t *cfg, char *errstr, size_t errstr_size);

#endif
