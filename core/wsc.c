/* core/wsc.c: being written */
