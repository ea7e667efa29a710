/*
 * Checks the "models" config section. Main thread.
 */
#include "inference/models.h"

#include <stdio.h>
#include <string.h>

static int check_string(const json_t *m, const char *name, const char *key, int required, char *err, size_t n) {
        const json_t *v = json_object_get(m, key);
        if (!v && !required)
                return 0;
        if (!json_is_string(v) || !json_string_length(v)) {
                snprintf(err, n, "models.%s.%s: expected a non-empty string", name, key);
                return -1;
        }
        return 0;
}

int mmp_models_check(const mmp_config_t *cfg, char *err, size_t n) {
        const json_t *models = mmp_config_get(cfg, "models"), *m;
        const char *name;
        if (!models)
                return 0;
        if (!json_is_object(models)) {
                snprintf(err, n, "models: expected an object of model names");
                return -1;
        }
        json_object_foreach((json_t *)models, name, m) {
                static const char *const local_keys[] = {"provider", "plugin", "op", "options", "response_path", NULL};
                static const char *const sm_keys[] = {"provider",     "endpoint", "request",       "input_field",
                                                      "content_type", "accept",   "response_path", NULL};
                const char *const *known;
                const char *provider, *k;
                json_t *v;
                if (!json_is_object(m)) {
                        snprintf(err, n, "models.%s: expected an object with a provider", name);
                        return -1;
                }
                provider = json_string_value(json_object_get(m, "provider"));
                if (!provider || (strcmp(provider, "local") && strcmp(provider, "sagemaker"))) {
                        snprintf(err, n, "models.%s.provider: expected \"local\" (a plugin operation) or \"sagemaker\" "
                                         "(an endpoint)",
                                 name);
                        return -1;
                }
                known = !strcmp(provider, "local") ? local_keys : sm_keys;
                json_object_foreach((json_t *)m, k, v) {
                        int ok = 0;
                        for (int i = 0; known[i]; i++)
                                ok |= !strcmp(k, known[i]);
                        if (!ok) {
                                snprintf(err, n, "unknown key \"models.%s.%s\" for a %s model", name, k, provider);
                                return -1;
                        }
                }
                if (!strcmp(provider, "local")) {
                        if (check_string(m, name, "plugin", 1, err, n) || check_string(m, name, "op", 1, err, n))
                                return -1;
                        v = json_object_get(m, "options");
                        if (v && !json_is_object(v)) {
                                snprintf(err, n, "models.%s.options: expected an object (the operation's options)", name);
                                return -1;
                        }
                } else {
                        if (check_string(m, name, "endpoint", 1, err, n))
                                return -1;
                        v = json_object_get(m, "request");
                        if (v && (!json_is_string(v) || (strcmp(json_string_value(v), "json") &&
                                                         strcmp(json_string_value(v), "raw")))) {
                                snprintf(err, n, "models.%s.request: expected \"json\" ({\"inputs\": x}) or \"raw\" (the bytes)",
                                         name);
                                return -1;
                        }
                        if (check_string(m, name, "input_field", 0, err, n) ||
                            check_string(m, name, "content_type", 0, err, n) || check_string(m, name, "accept", 0, err, n))
                                return -1;
                }
                if (check_string(m, name, "response_path", 0, err, n))
                        return -1;
        }
        return 0;
}
