#version 330 core
// Overlay boxes (race overlaps, the selected update's region, the followed element):
// one instance per box, two triangles covering it in framebuffer px (y down), grown
// to at least u_min_px so that a box of one texel stays visible when zoomed out.
// The fragment shader keeps only an outline just inside the (grown) box (just outside
// it for the two-tone style, so that the one element it marks keeps its color).

layout(location = 0) in vec4 a_box;     // texel box (c0, r0, c1, r1), stop exclusive
layout(location = 1) in vec4 a_color;   // rgb, a = outline width in px

uniform vec2 u_offset;          // px of the image's top-left corner
uniform vec2 u_scale;           // px per texel, x and y
uniform vec2 u_fb;              // framebuffer size in px
uniform float u_min_px;

flat out vec4 v_rect;           // the box in px: (x0, y0, x1, y1)
flat out vec4 v_color;

void main() {
    vec2 a = u_offset + a_box.xy * u_scale;
    vec2 b = u_offset + a_box.zw * u_scale;
    vec2 grow = max(vec2(0.0), vec2(u_min_px) - (b - a)) * 0.5;
    a -= grow;
    b += grow;
    int style = int(a_color.a / 16.0);
    float outside = style == 2 ? a_color.a - float(style) * 16.0 : 0.0;   // two-tone: outside
    v_rect = vec4(a, b);
    a -= vec2(outside);
    b += vec2(outside);
    int k = gl_VertexID;                        // 0 1 2, 2 1 3 of the corners
    int c = k < 3 ? k : (k == 3 ? 2 : (k == 4 ? 1 : 3));
    vec2 corner = vec2(float(c & 1), float((c >> 1) & 1));
    vec2 px = mix(a, b, corner);
    v_color = a_color;
    gl_Position = vec4(px.x / u_fb.x * 2.0 - 1.0, 1.0 - px.y / u_fb.y * 2.0, 0.0, 1.0);
}
