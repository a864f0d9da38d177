FROM busybox
ARG A="two words" B='$single' C=plain\ esc
ENV X="$A" Y=$B Z=${C}
RUN echo "$A|$B|$C" > /out
