build/asan/store/store.o: store/store.c store/compress.h store/digest.h \
 store/kv.h store/store.h
store/compress.h:
store/digest.h:
store/kv.h:
store/store.h:
