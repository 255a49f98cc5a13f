/* Writes a synthetic test JPEG through the system libjpeg, for layouts PIL cannot write (YCCK, 4:4:0, 4:1:1, mixed
 * sampling factors, RGB): enc WIDTH HEIGHT ycc|ycck|cmyk|rgb|gray FACTORS QUALITY PROGRESSIVE(0|1) RESTART_MCUS OUT.JPG
 * FACTORS is "" (libjpeg's defaults) or HxV per component, comma-separated, e.g. "1x2,1x1,1x1".
 * Used by bench/pytorch/make_jpeg_fixtures.py; build: gcc -O2 -o enc jpeg_test_encoder.c -ljpeg -lm */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <jpeglib.h>
int main(int argc, char **argv) {
  int w = atoi(argv[1]), h = atoi(argv[2]); const char *cs = argv[3]; const char *fac = argv[4]; int q = atoi(argv[5]);
  int prog = atoi(argv[6]), rst = atoi(argv[7]); const char *out = argv[8];
  struct jpeg_compress_struct c; struct jpeg_error_mgr e; c.err = jpeg_std_error(&e); jpeg_create_compress(&c);
  FILE *f = fopen(out, "wb"); jpeg_stdio_dest(&c, f);
  int nc = !strcmp(cs, "gray") ? 1 : (!strcmp(cs, "cmyk") || !strcmp(cs, "ycck")) ? 4 : 3;
  c.image_width = w; c.image_height = h; c.input_components = nc;
  c.in_color_space = nc == 1 ? JCS_GRAYSCALE : nc == 4 ? JCS_CMYK : JCS_RGB;
  jpeg_set_defaults(&c);
  if (!strcmp(cs, "ycck")) jpeg_set_colorspace(&c, JCS_YCCK);
  if (!strcmp(cs, "rgb")) jpeg_set_colorspace(&c, JCS_RGB);
  jpeg_set_quality(&c, q, TRUE);
  for (int i = 0; i < nc && fac[0]; i++) { c.comp_info[i].h_samp_factor = fac[4*i] - '0'; c.comp_info[i].v_samp_factor = fac[4*i+2] - '0'; }
  if (prog) jpeg_simple_progression(&c);
  c.restart_interval = rst;
  jpeg_start_compress(&c, TRUE);
  unsigned char *row = malloc(w * nc); srand(w * 31 + h);
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w; x++) for (int k = 0; k < nc; k++) {
      double v = 128 + 100 * sin(x * (0.07 + 0.05 * k) + y * (0.11 - 0.03 * k)) + (rand() % 40 - 20);
      if (((x / 9) + (y / 7)) % 5 == 0) v = (k & 1) ? 250 : 5;
      row[x * nc + k] = v < 0 ? 0 : v > 255 ? 255 : (unsigned char)v;
    }
    JSAMPROW r = row; jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c); fclose(f); return 0;
}
