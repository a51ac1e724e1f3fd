/* core/ws.c: being written */
