# core/redis.c: async Redis client against a real redis-server.
chat_unit_test(test_core_redis core testutil)
