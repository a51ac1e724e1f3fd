/* core/log.c: being written */
