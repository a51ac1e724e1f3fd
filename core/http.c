/* core/http.c: being written */
