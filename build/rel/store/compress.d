build/rel/store/compress.o: store/compress.c store/compress.h
store/compress.h:
