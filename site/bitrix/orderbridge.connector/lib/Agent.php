<?php
/*
 * The Bitrix agent that empties the queue (b_orderbridge_queue): registered by
 * install/index.php to run every 60 s. Every web node may run it at the same moment; the
 * queue's claims keep them from sending one row twice. An agent is a PHP expression that
 * Bitrix evaluates and then replaces with the string it returns, so resend() always returns
 * its own call, or the agent would stop.
 */

namespace Orderbridge;

final class Agent
{
	public const NAME = '\Orderbridge\Agent::resend();';

	public static function resend(): string
	{
		try {
			// Run from cron, the agent may take its time; run on a visitor's page hit (Bitrix's
			// default), it must stay short, and the next hit carries on where it stopped.
			$cron = defined('BX_CRONTAB') && BX_CRONTAB === true;
			Relay::fromConfig()->flush($cron ? 1000 : 50, $cron ? 50.0 : 5.0);
		} catch (\Throwable $e) {
			Log::error('queue re-send failed: ' . $e->getMessage());
		}
		return self::NAME;
	}
}
