/* core/buf.c: being written */
