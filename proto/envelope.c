/* proto/envelope.c: being written */
