/* Fuzz target: any JSON cJSON parses is printed by proto_json_print exactly
 * as cJSON_PrintUnformatted prints it (a round trip is not checked: cJSON
 * itself writes infinities as null). Invariants are checked with abort()
 * so the replay run fails loudly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *tree = cJSON_ParseWithLength((const char *)data, size);
    if (!tree)
        return 0;
    char *want = cJSON_PrintUnformatted(tree);
    size_t len = 0;
    char *got = proto_json_print(tree, &len);
    CHECK(want && got);
    CHECK(strcmp(want, got) == 0);
    CHECK(len == strlen(got));
    free(want);
    free(got);
    cJSON_Delete(tree);
    return 0;
}
