/*
 * fcntl and ioctl of packetdrill's table are C-variadic: packetdrill calls them with or
 * without a third argument. These trampolines read that argument only for the commands
 * that have one, then call the fixed-argument Rust functions whose pointers lead the shim's
 * userdata (struct lingerstack_pd_head, mirrored in src/table.rs).
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/ioctl.h>

struct lingerstack_pd_head {
	int (*fcntl)(void *userdata, int fd, int cmd, long arg);
	int (*ioctl)(void *userdata, int fd, unsigned long request, void *arg);
};

__attribute__((visibility("hidden")))
int lingerstack_pd_fcntl(void *userdata, int fd, int cmd, ...)
{
	long arg = 0;

	switch (cmd) {
	/* The commands of fcntl(2) whose third argument is an int. */
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
	case F_SETFD:
	case F_SETFL:
	case F_SETOWN: {
		va_list ap;

		va_start(ap, cmd);
		arg = va_arg(ap, int);
		va_end(ap);
		break;
	}
	default:
		break;
	}
	return ((struct lingerstack_pd_head *)userdata)->fcntl(userdata, fd, cmd, arg);
}

__attribute__((visibility("hidden")))
int lingerstack_pd_ioctl(void *userdata, int fd, unsigned long request, ...)
{
	void *arg = NULL;

	switch (request) {
	/* The socket ioctls the shim answers; each takes an int pointer. */
	case FIONBIO:
	case FIONREAD:
	case TIOCOUTQ: {
		va_list ap;

		va_start(ap, request);
		arg = va_arg(ap, void *);
		va_end(ap);
		break;
	}
	default:
		break;
	}
	return ((struct lingerstack_pd_head *)userdata)->ioctl(userdata, fd, request, arg);
}
