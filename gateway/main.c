/* chat-gateway: start-up and shutdown. */
#include <stdio.h>
#include <sodium.h>

#include "gateway/gateway.h"
#include "core/core.h"

int main(int argc, char **argv)
{
    gateway_config_t cfg;
    char err[256] = "";
    gateway_config_defaults(&cfg);
    int rc = gateway_config_parse(&cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    core_log_set_level((core_log_level_t)core_log_parse_level(cfg.log_level));
    core_log_set_tag("gateway");
    struct ev_loop *loop = EV_DEFAULT;
    core_install_signals(loop);
    gateway_t *g = gateway_new(loop, &cfg, err, sizeof err);
    sodium_memzero(cfg.redis_password, sizeof cfg.redis_password); /* the Redis client has it */
    if (!g) {
        CORE_ERROR("cannot start: %s", err);
        return 1;
    }
    CORE_INFO("chat-gateway listening on port %d (redis %s)", gateway_port(g), cfg.redis);
    ev_run(loop, 0);
    CORE_INFO("shutting down");
    gateway_free(g);
    ev_run(loop, 0); /* let closing connections finish (each bounded by core's close timeout) */
    return 0;
}
