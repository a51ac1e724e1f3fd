/* core/redis.c: being written */
