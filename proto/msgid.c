/* proto/msgid.c: being written */
