/* core/net.c: being written */
