FROM busybox
RUN echo a \
# a comment inside
    b \

    c > /out
