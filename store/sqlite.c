/* store/sqlite.c: being written */
