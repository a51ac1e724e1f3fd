/* core/pool.c: being written */
