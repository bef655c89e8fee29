#version 430 core
// bufferscope GL backend: element sets drawn as points into the back texture.
// One vertex per element update: its flat element offset and its float32 bit
// pattern. Points of one draw are written in array order (GL primitive order),
// so for repeated offsets the last value wins, exactly as numpy's b[i] = v does.
layout(location = 0) in uint offset;
layout(location = 1) in uint bits;

uniform uint tex_width;      // texels per row of the buffer's texture
uniform vec2 texel_ndc;      // (2 / width, 2 / height)

flat out uint v_bits;

void main()
{
    uint x = offset % tex_width;
    uint y = offset / tex_width;
    gl_Position = vec4((float(x) + 0.5) * texel_ndc.x - 1.0,
                       (float(y) + 0.5) * texel_ndc.y - 1.0, 0.0, 1.0);
    gl_PointSize = 1.0;
    v_bits = bits;
}
