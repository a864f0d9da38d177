FROM busybox
ENV A=a EMPTY=""
ENV R1=${A:-x} R2=${UNSET:-x} R3=${EMPTY:-x} R5=${A:+y} R6=${UNSET:+y} R7=${EMPTY:+y} R8="${A:+${A}-nested}"
