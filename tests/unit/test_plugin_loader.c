/*
 * Plugin loader: good plugins load with their operations; every kind of
 * broken file is refused with a reason naming what is wrong, and the rest
 * still loads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugin/loader.h"

static const mmp_plugin_refusal_t *refusal(const mmp_plugins_t *ps, const char *file) {
        for (size_t i = 0; i < ps->n_refused; i++) {
                const char *slash = strrchr(ps->refused[i].path, '/');
                if (slash && !strcmp(slash + 1, file))
                        return &ps->refused[i];
        }
        return NULL;
}

static void test_load_dir_refuses_broken(void **state) {
        char err[512];
        mmp_plugins_t *ps = mmp_plugins_load_dir(MMP_TEST_PLUGIN_DIR, err, sizeof(err));
        const mmp_plugin_refusal_t *r;
        (void)state;
        assert_non_null(ps);

        /* The good one is there with its operations. */
        const mmp_plugin_inst_t *slow = mmp_plugins_find(ps, "slow");
        assert_non_null(slow);
        assert_int_equal(slow->n_ops, 3);
        assert_string_equal(slow->desc->ops[0].name, "sleep");
        assert_int_equal(ps->n, 1);

        assert_non_null(r = refusal(ps, "wrong_abi.so"));
        assert_non_null(strstr(r->reason, "plugin ABI 2.0, this engine speaks ABI 1.x"));
        assert_non_null(r = refusal(ps, "no_entry.so"));
        assert_non_null(strstr(r->reason, "no entry symbol mmp_plugin_entry()"));
        assert_non_null(r = refusal(ps, "init_fails.so"));
        assert_non_null(strstr(r->reason, "init failed: model file /nonexistent/model.bin is missing"));
        assert_non_null(r = refusal(ps, "bad_name.so"));
        assert_non_null(strstr(r->reason, "invalid plugin name \"Bad Name\""));
        assert_non_null(r = refusal(ps, "not_elf.so"));
        assert_non_null(strstr(r->reason, "not a loadable shared object"));
        assert_int_equal(ps->n_refused, 5);
        mmp_plugins_free(ps);
}

static void test_missing_dir_is_an_error(void **state) {
        char err[512];
        (void)state;
        assert_null(mmp_plugins_load_dir("/nonexistent/plugins", err, sizeof(err)));
        assert_non_null(strstr(err, "cannot open plugin folder /nonexistent/plugins"));
}

static void test_load_single_file(void **state) {
        char err[512];
        mmp_plugin_inst_t inst;
        (void)state;
        assert_int_equal(mmp_plugin_load(MMP_TEST_PLUGIN_DIR "/slow.so", &inst, err, sizeof(err)), 0);
        assert_string_equal(inst.desc->name, "slow");
        assert_string_equal(inst.desc->version, "0.0.1");
        mmp_plugin_unload(&inst);
        assert_int_equal(mmp_plugin_load(MMP_TEST_PLUGIN_DIR "/wrong_abi.so", &inst, err, sizeof(err)), -1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_load_dir_refuses_broken),
            cmocka_unit_test(test_missing_dir_is_an_error),
            cmocka_unit_test(test_load_single_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
