/* SPDX-License-Identifier: MIT */
/*
 * generate: N varied virtual phones for benchmarks and scale tests (--generate N --seed S).
 * The same seed gives the same devices (UDIDs, states, values); backup dates are relative to
 * now_unix so a "healthy" phone stays healthy whenever the run happens.
 */
#ifndef CRADLE_SIM_GENERATE_H
#define CRADLE_SIM_GENERATE_H

#include <stddef.h>
#include <stdint.h>

struct scenario;
struct cJSON;

#define GENERATE_MAX 10000

/* The generated scenario document (caller frees with cJSON_Delete), NULL on ENOMEM. */
struct cJSON *generate_document(int n, uint64_t seed, int64_t now_unix);
/* Appends the devices to sc. 0 or -EINVAL/-ENOMEM with err set. */
int generate_devices(struct scenario *sc, int n, uint64_t seed, int64_t now_unix, char *err,
                     size_t errlen);

#endif
