#version 430 core
// bufferscope GL backend: writes the set's bit pattern unchanged (R32UI target),
// so NaN, ±Inf, -0.0 and subnormals arrive exactly.
flat in uint v_bits;
layout(location = 0) out uint color;

void main()
{
    color = v_bits;
}
