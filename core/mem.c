/* core/mem.c: being written */
