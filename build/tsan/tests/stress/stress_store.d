build/tsan/tests/stress/stress_store.o: tests/stress/stress_store.c \
 store/store.h
store/store.h:
