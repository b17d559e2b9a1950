/* A chain of dependent integer additions, each waiting for the one before: one cycle apiece on
   every x86-64 and AArch64 core (an add's latency), whatever the core's width, so n of them take
   n cycles and n / their time is the clock the core ran at. The loop's own counter and branch
   run beside the chain on other ports. Register plus register: an add of an immediate is folded
   at rename on recent Intel cores (measured here: 13 GHz "clock" on a Sapphire Rapids VM). */

int chain_available(void) {
#if defined(__x86_64__) || defined(__aarch64__)
    return 1;
#else
    return 0;
#endif
}

#if defined(__x86_64__)
#define ADD4 "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\t"
#elif defined(__aarch64__)
#define ADD4 "add %0, %0, %1\n\tadd %0, %0, %1\n\tadd %0, %0, %1\n\tadd %0, %0, %1\n\t"
#endif

/* n / 16 rounds of 16 dependent additions; returns their sum (n rounded down to 16) */
long long add_chain(long long n) {
    long long x = 0, one = 1;
#ifdef ADD4
    for (long long i = 0; i < n / 16; i++)
        __asm__ volatile(ADD4 ADD4 ADD4 ADD4 : "+r"(x) : "r"(one));
#else
    (void)n, (void)one;
#endif
    return x;
}
