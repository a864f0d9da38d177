FROM busybox
RUN mkdir -p /x/arch && echo old > /x/arch/one.txt && chmod 777 /x/arch && echo keep > /x/arch/keep
ADD archive.tar /x/
