/*
 * The JSON configuration: embedded defaults, a user file layered on top,
 * ${ENV} interpolation, --set overrides and validation whose every error
 * names the key path and what was expected. Main thread at start-up; read
 * only afterwards.
 */
#ifndef MMP_CONFIG_H
#define MMP_CONFIG_H

#include <jansson.h>
#include <stdint.h>

typedef struct mmp_config mmp_config_t;

/* The embedded defaults (a JSON text compiled into the binary). */
const char *mmp_config_defaults_text(void);

/* Defaults, then (if path != NULL) the file deep-merged over them, with
 * ${VAR} and ${VAR:-fallback} replaced in every string value. Not yet
 * validated: call mmp_config_validate after applying overrides. */
mmp_config_t *mmp_config_load(const char *path, char *errstr, size_t errstr_size);
/* Same with the user JSON given as text; origin names it in errors. */
mmp_config_t *mmp_config_load_string(const char *text, const char *origin, char *errstr,
                                     size_t errstr_size);

/* --set a.b.c=value: value is parsed as JSON when it is valid JSON,
 * otherwise taken as a string. Creates intermediate objects. */
int mmp_config_set(mmp_config_t *cfg, const char *assignment, char *errstr, size_t errstr_size);

/* Checks every known key's type and range, refuses unknown keys. Error
 * text like: "engine.lanes: expected a non-negative integer, got \"two\"". */
int mmp_config_validate(const mmp_config_t *cfg, char *errstr, size_t errstr_size);

/* Accessors by dotted path (after validation). Borrowed results. */
const json_t *mmp_config_get(const mmp_config_t *cfg, const char *path);
const char *mmp_config_str(const mmp_config_t *cfg, const char *path, const char *def);
int64_t mmp_config_int(const mmp_config_t *cfg, const char *path, int64_t def);
int mmp_config_bool(const mmp_config_t *cfg, const char *path, int def);
/* Where the user file came from ("<embedded defaults>" when none). */
const char *mmp_config_origin(const mmp_config_t *cfg);
/* The whole merged document (borrowed). */
const json_t *mmp_config_root(const mmp_config_t *cfg);

void mmp_config_free(mmp_config_t *cfg);

#endif
