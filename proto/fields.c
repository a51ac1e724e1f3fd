/* proto/fields.c: being written */
