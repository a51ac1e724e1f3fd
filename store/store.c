/* store/store.c: being written */
