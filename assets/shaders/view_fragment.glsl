#version 330 core
// The buffer view: one float32 texel per element, mapped through a 256-entry LUT.
//
// Coordinates: framebuffer pixels with y pointing down ("px"), texels with x = column
// and y = row ("tc"). px = u_offset + tc * u_scale. Sampling is texelFetch, so it is
// nearest-texel at every zoom and never filters NaN into its neighbours.

uniform sampler2D u_data;       // R32F, width = columns, height = rows (of all planes)
uniform int u_row_offset;       // first texture row of the shown plane (3-D: z * rows)
uniform sampler2D u_lut;        // 256 x 1 RGBA8
uniform ivec2 u_size;           // (columns, rows) of the data
uniform vec2 u_offset;          // px of the image's top-left corner
uniform vec2 u_scale;           // px per texel, x and y
uniform float u_fb_height;      // framebuffer height in px
uniform vec2 u_levels;          // (lo, hi)
uniform vec4 u_nan;
uniform vec4 u_posinf;
uniform vec4 u_neginf;
uniform vec4 u_background;
uniform vec4 u_grid;            // rgb, a = opacity; drawn when a texel is >= u_grid_min px
uniform float u_grid_min;
uniform vec4 u_selection;       // texel box (c0, r0, c1, r1), stop exclusive; empty = none
uniform vec4 u_selection_color;
uniform ivec2 u_hover;          // hovered texel, (-1, -1) = none
uniform vec4 u_hover_color;
uniform sampler2D u_marks;      // R8 mark mask of the shown plane, one texel per tile
uniform int u_marks_tile;       // elements per mask texel along x and y; 0 = no marks
uniform vec4 u_mark_color;

out vec4 frag_color;

vec4 colormap(float v) {
    uint bits = floatBitsToUint(v);
    if ((bits & 0x7f800000u) == 0x7f800000u) {          // NaN or +-Inf
        if ((bits & 0x007fffffu) != 0u) return u_nan;
        return (bits >> 31) != 0u ? u_neginf : u_posinf;
    }
    float span = u_levels.y - u_levels.x;
    float t;
    if (span > 0.0) {
        t = clamp((v - u_levels.x) / span, 0.0, 1.0);
    } else {
        t = v < u_levels.x ? 0.0 : (v > u_levels.x ? 1.0 : 0.5);
    }
    int i = clamp(int(floor(t * 256.0)), 0, 255);
    return texelFetch(u_lut, ivec2(i, 0), 0);
}

// Distance in px from p to the outline of the box [a, b] (negative inside).
float outline_distance(vec2 p, vec2 a, vec2 b) {
    vec2 d = max(a - p, p - b);
    return max(d.x, d.y);
}

void main() {
    vec2 px = vec2(gl_FragCoord.x, u_fb_height - gl_FragCoord.y);
    vec2 tc = (px - u_offset) / u_scale;
    vec4 color = u_background;
    bool inside = all(greaterThanEqual(tc, vec2(0.0))) && all(lessThan(tc, vec2(u_size)));
    if (inside) {
        ivec2 cell = ivec2(floor(tc));
        color = colormap(texelFetch(u_data, cell + ivec2(0, u_row_offset), 0).r);
        if (min(u_scale.x, u_scale.y) >= u_grid_min) {
            vec2 f = (tc - vec2(cell)) * u_scale;   // px from the cell's top-left corner
            if (f.x < 1.0 || f.y < 1.0) color.rgb = mix(color.rgb, u_grid.rgb, u_grid.a);
        }
        // Marked elements (the diff): a square in the middle of the cell (or tile),
        // black-rimmed, when it is big enough on screen; a 50% stipple of the mark
        // color when it is not. Neither looks like a colormap color.
        if (u_marks_tile > 0) {
            ivec2 tile = cell / u_marks_tile;
            if (texelFetch(u_marks, tile, 0).r > 0.5) {
                vec2 ta = u_offset + vec2(tile * u_marks_tile) * u_scale;
                vec2 tsz = float(u_marks_tile) * u_scale;
                if (min(tsz.x, tsz.y) >= 6.0) {
                    vec2 c = ta + 0.5 * tsz;
                    vec2 h = max(vec2(1.5), 0.2 * tsz);
                    float d = outline_distance(px, c - h, c + h);
                    if (d <= 0.0) color = d > -1.0 ? vec4(0.0, 0.0, 0.0, 1.0) : u_mark_color;
                } else if (mod(floor(px.x) + floor(px.y), 2.0) < 0.5) {
                    color = u_mark_color;
                }
            }
        }
        if (cell == u_hover) {
            vec2 a = u_offset + vec2(cell) * u_scale;
            float d = outline_distance(px, a, a + u_scale);
            if (d > -1.5) color = u_hover_color;
        }
    }
    // The selection: an outline 2 px wide just inside the box, drawn only over the
    // data (never outside it, never tinting the cells it encloses).
    if (inside && u_selection.z > u_selection.x && u_selection.w > u_selection.y) {
        vec2 a = u_offset + u_selection.xy * u_scale;
        vec2 b = u_offset + u_selection.zw * u_scale;
        float d = outline_distance(px, a, b);
        if (d <= 0.0 && d > -2.0) color = u_selection_color;
    }
    frag_color = vec4(color.rgb, 1.0);
}
