/* Decodes a JPEG to raw RGB as PIL's Image.open(f).convert("RGB") does, through the system libjpeg(-turbo) with its
 * defaults (grayscale replicated; CMYK read as Adobe-inverted and converted with PIL's formula), for checking qsvit's
 * decoder where PIL is not installed. Agrees with PIL 12.3 / libjpeg-turbo 3.1.4 on all of tests/fixtures/jpeg.
 *   gcc -O2 -o oracle jpeg_pil_oracle.c -ljpeg && ./oracle in.jpg out.rgb */
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>
int main(int argc, char **argv) {
  struct jpeg_decompress_struct d; struct jpeg_error_mgr e; d.err = jpeg_std_error(&e); jpeg_create_decompress(&d);
  FILE *f = fopen(argv[1], "rb"); jpeg_stdio_src(&d, f); jpeg_read_header(&d, TRUE);
  int nc = d.num_components;
  d.out_color_space = nc == 1 ? JCS_GRAYSCALE : nc == 3 ? JCS_RGB : JCS_CMYK;
  jpeg_start_decompress(&d);
  int w = d.output_width, h = d.output_height, oc = d.output_components;
  unsigned char *row = malloc(w * oc), *out = malloc(w * 3);
  FILE *o = fopen(argv[2], "wb");
  while (d.output_scanline < h) {
    JSAMPROW r = row; jpeg_read_scanlines(&d, &r, 1);
    for (int x = 0; x < w; x++) {
      if (oc == 1) out[3*x] = out[3*x+1] = out[3*x+2] = row[x];
      else if (oc == 3) { out[3*x] = row[3*x]; out[3*x+1] = row[3*x+1]; out[3*x+2] = row[3*x+2]; }
      else { int nk = row[4*x+3]; for (int k = 0; k < 3; k++) { int c = 255 - row[4*x+k]; int t = c * nk + 128; int v = nk - (((t >> 8) + t) >> 8); out[3*x+k] = v < 0 ? 0 : v > 255 ? 255 : v; } }
    }
    fwrite(out, 1, w * 3, o);
  }
  jpeg_finish_decompress(&d); fclose(o); return 0;
}
