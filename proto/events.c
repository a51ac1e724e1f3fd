/* proto/events.c: being written */
