/*
 * Plugins broken on purpose, one flaw per build flag, for the loader tests:
 * wrong ABI major, no entry symbol, failing init, invalid name.
 */
#include "mmpipe/plugin.h"

static mmp_value_t *op_noop(void *state, mmp_call_t *call, const mmp_value_t *input, const mmp_value_t *opts) {
        (void)state;
        (void)call;
        (void)input;
        (void)opts;
        return 0;
}

static const mmp_plugin_op_t ops[] = {{"noop", "does nothing", op_noop}, {0, 0, 0}};

static int broken_init(const mmp_host_api_t *h, void **statep, char *errstr, size_t n) {
        (void)h;
        (void)statep;
#ifdef BROKEN_INIT_FAILS
        __builtin_snprintf(errstr, n, "model file /nonexistent/model.bin is missing");
        return -1;
#else
        (void)errstr;
        (void)n;
        return 0;
#endif
}

static const mmp_plugin_t plugin = {
#ifdef BROKEN_WRONG_ABI
    .abi_major = MMP_PLUGIN_ABI_MAJOR + 1,
    .abi_minor = 0,
    .struct_size = sizeof(mmp_plugin_t),
#else
    MMP_PLUGIN_HEADER,
#endif
#ifdef BROKEN_BAD_NAME
    .name = "Bad Name",
#else
    .name = "broken",
#endif
    .version = "0.0.1",
    .description = "broken on purpose",
    .ops = ops,
    .init = broken_init,
};

#ifndef BROKEN_NO_ENTRY
MMP_PLUGIN_EXPORT const mmp_plugin_t *mmp_plugin_entry(void) {
        return &plugin;
}
#else
MMP_PLUGIN_EXPORT const mmp_plugin_t *some_other_symbol(void) {
        return &plugin;
}
#endif
