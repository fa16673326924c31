/* Stand-in for SPLASH-3 WATER-NSQUARED, used only when the SPLASH-3 source
 * cannot be had (no SPLASH3_SRC, no network, no mirror). Like water-nsquared
 * on its n512-p1 input, it is a CPU-bound O(n^2) molecular-dynamics loop over
 * 512 particles (Lennard-Jones pairs, velocity Verlet) that reads its
 * parameters from stdin and does almost no I/O, so a tracer should cost it
 * nothing. It is not the same physics (no water model, no intramolecular
 * forces) and its run time differs.
 *
 * stdin: "<n particles> <steps>" */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    int n = 512, steps = 6;
    if (scanf("%d %d", &n, &steps) != 2) {
        fprintf(stderr, "water: expected \"<particles> <steps>\" on stdin\n");
        return 2;
    }
    double *x = calloc(3 * n, sizeof *x), *v = calloc(3 * n, sizeof *v), *f = calloc(3 * n, sizeof *f);
    if (!x || !v || !f) return 1;
    int side = (int)ceil(cbrt(n));
    for (int i = 0; i < n; i++) {
        x[3 * i] = i % side * 1.2;
        x[3 * i + 1] = i / side % side * 1.2;
        x[3 * i + 2] = i / (side * side) * 1.2;
    }
    const double dt = 1e-3;
    double epot = 0;
    for (int s = 0; s < steps; s++) {
        for (int k = 0; k < 3 * n; k++) f[k] = 0;
        epot = 0;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) {
                double d[3], r2 = 0;
                for (int k = 0; k < 3; k++) {
                    d[k] = x[3 * i + k] - x[3 * j + k];
                    r2 += d[k] * d[k];
                }
                double ir6 = 1 / (r2 * r2 * r2), fr = (48 * ir6 * ir6 - 24 * ir6) / r2;
                epot += 4 * (ir6 * ir6 - ir6);
                for (int k = 0; k < 3; k++) {
                    f[3 * i + k] += fr * d[k];
                    f[3 * j + k] -= fr * d[k];
                }
            }
        for (int k = 0; k < 3 * n; k++) {
            v[k] += f[k] * dt;
            x[k] += v[k] * dt;
        }
    }
    printf("potential energy %.6f\n", epot);
    return 0;
}
