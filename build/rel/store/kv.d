build/rel/store/kv.o: store/kv.c store/kv.h store/store.h
store/kv.h:
store/store.h:
