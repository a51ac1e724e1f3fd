/* core/misc.c: being written */
