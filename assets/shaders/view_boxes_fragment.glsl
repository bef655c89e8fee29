#version 330 core
// The outline of one overlay box. a_color.a packs the style and the width:
// style * 16 + width px. Styles: 0 solid and 1 dashed (6 px dashes), just inside the
// box; 2 two-tone, just outside it (the outer half in the color, the inner half
// black: seen on any colormap, and the cells it surrounds keep their colors).

uniform float u_fb_height;      // framebuffer height in px

flat in vec4 v_rect;
flat in vec4 v_color;
out vec4 frag_color;

void main() {
    vec2 px = vec2(gl_FragCoord.x, u_fb_height - gl_FragCoord.y);
    vec2 d2 = max(v_rect.xy - px, px - v_rect.zw);
    float d = max(d2.x, d2.y);                  // negative inside
    int style = int(v_color.a / 16.0);
    float width = v_color.a - float(style) * 16.0;
    vec3 rgb = v_color.rgb;
    if (style == 2) {
        if (d <= 0.0 || d > width) discard;
        if (d <= width * 0.5) rgb = vec3(0.0);
        frag_color = vec4(rgb, 1.0);
        return;
    }
    if (d < -width) discard;
    if (style == 1 && mod(floor((px.x + px.y) / 6.0), 2.0) > 0.5) discard;
    frag_color = vec4(rgb, 1.0);
}
