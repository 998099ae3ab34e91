<?php
/*
 * The module's settings page (Settings → Product settings → Module settings → orderbridge):
 * orderbridge URL, signing secret, site id, timeout, and, per person type, whether it is a
 * legal entity and which order property codes hold the buyer's name, phone, e-mail, company
 * and INN. Also shows how many snapshots wait in the queue (b_orderbridge_queue).
 * Also: which order properties each snapshot carries ("Properties to send"), and, per site
 * (LID) of the installation, its own orderbridge URL, secret and site id, or that its orders
 * are not sent (option "sites", JSON by LID; Config::forSite).
 * Secrets are write-only here: the page never prints them back, and an empty field keeps
 * the current one.
 */

use Bitrix\Main\Config\Option;
use Bitrix\Main\Context;
use Bitrix\Main\Loader;
use Bitrix\Main\Localization\Loc;
use Orderbridge\Config;
use Orderbridge\Signature;
use Orderbridge\Queue;

defined('B_PROLOG_INCLUDED') && B_PROLOG_INCLUDED === true || die();

$moduleId = 'orderbridge.connector';
Loc::loadMessages(__FILE__);

global $APPLICATION;
if ($APPLICATION->GetGroupRight($moduleId) < 'W') {
	$APPLICATION->AuthForm(Loc::getMessage('ACCESS_DENIED'));
}
Loader::includeModule($moduleId);
Loader::includeModule('sale');

$request = Context::getCurrent()->getRequest();
$fields = ['name', 'phone', 'email', 'company', 'inn'];
$errors = [];

$personTypes = [];
$rows = \Bitrix\Sale\Internals\PersonTypeTable::getList([
	'select' => ['ID', 'NAME', 'LID'],
	'order' => ['SORT' => 'ASC', 'ID' => 'ASC'],
]);
while ($row = $rows->fetch()) {
	$personTypes[(string)$row['ID']] = $row;
}

$sites = [];
$rows = \Bitrix\Main\SiteTable::getList([
	'select' => ['LID', 'NAME', 'SERVER_NAME', 'ACTIVE'],
	'order' => ['SORT' => 'ASC'],
]);
while ($row = $rows->fetch()) {
	if (preg_match(Config::LID_PATTERN, (string)$row['LID'])) {
		$sites[(string)$row['LID']] = $row;
	}
}
$siteSettings = Config::parseSites(Option::get($moduleId, 'sites', ''));

if ($request->isPost() && $request->getPost('save') !== null && check_bitrix_sessid()) {
	$url = trim((string)$request->getPost('url'));
	if ($url !== '' && !preg_match('#^https?://[^\s/]+(:\d+)?(/\S*)?$#', $url)) {
		$errors[] = Loc::getMessage('ORDERBRIDGE_ERR_URL');
	}
	$secret = trim((string)$request->getPost('signing_secret'));
	if ($secret !== '') {
		try {
			Signature::key($secret);
		} catch (\InvalidArgumentException $e) {
			$errors[] = Loc::getMessage('ORDERBRIDGE_ERR_SECRET');
		}
	}
	$timeout = (float)$request->getPost('timeout');
	if ($timeout <= 0 || $timeout > Config::MAX_TIMEOUT) {
		$errors[] = Loc::getMessage('ORDERBRIDGE_ERR_TIMEOUT');
	}
	$sendProperties = trim((string)$request->getPost('send_properties'));
	foreach (preg_split('/[\s,;]+/', $sendProperties, -1, PREG_SPLIT_NO_EMPTY) as $code) {
		if (!preg_match('/^[A-Za-z0-9_-]{1,50}$/D', $code)) {
			$errors[] = Loc::getMessage('ORDERBRIDGE_ERR_CODE', ['#CODE#' => htmlspecialcharsbx($code)]);
		}
	}
	$newSites = [];
	$postedSites = (array)$request->getPost('sites');
	foreach ($sites as $lid => $site) {
		$in = (array)($postedSites[$lid] ?? []);
		$entry = [
			'url' => rtrim(trim((string)($in['url'] ?? '')), '/'),
			'site_id' => trim((string)($in['site_id'] ?? '')),
			'signing_secret' => trim((string)($in['signing_secret'] ?? '')),
			'enabled' => ($in['enabled'] ?? '') === 'Y',
		];
		if ($entry['url'] !== '' && !preg_match('#^https?://[^\s/]+(:\d+)?(/\S*)?$#', $entry['url'])) {
			$errors[] = Loc::getMessage('ORDERBRIDGE_ERR_URL') . ' [' . htmlspecialcharsbx($lid) . ']';
		}
		if ($entry['site_id'] !== '' && !preg_match('/^\S{1,255}$/', $entry['site_id'])) {
			$errors[] = Loc::getMessage('ORDERBRIDGE_ERR_SITE_ID', ['#LID#' => htmlspecialcharsbx($lid)]);
		}
		if ($entry['signing_secret'] !== '') {
			try {
				Signature::key($entry['signing_secret']);
			} catch (\InvalidArgumentException $e) {
				$errors[] = Loc::getMessage('ORDERBRIDGE_ERR_SECRET') . ' [' . htmlspecialcharsbx($lid) . ']';
			}
		} else { // empty means "keep the current one"
			$entry['signing_secret'] = $siteSettings[$lid]['signing_secret'] ?? '';
		}
		$newSites[$lid] = $entry;
	}
	$map = [];
	$posted = (array)$request->getPost('person_types');
	foreach ($personTypes as $id => $type) {
		$in = (array)($posted[$id] ?? []);
		$entry = ['legal' => ($in['legal'] ?? '') === 'Y'];
		foreach ($fields as $f) {
			$code = trim((string)($in[$f] ?? ''));
			if ($code !== '' && !preg_match('/^[A-Za-z0-9_]{1,50}$/', $code)) {
				$errors[] = Loc::getMessage('ORDERBRIDGE_ERR_CODE', ['#CODE#' => htmlspecialcharsbx($code)]);
			}
			if ($code !== '') {
				$entry[$f] = $code;
			}
		}
		$map[$id] = $entry;
	}
	if (!$errors) {
		Option::set($moduleId, 'url', rtrim($url, '/'));
		if ($secret !== '') { // empty means "keep the current one"
			Option::set($moduleId, 'signing_secret', $secret);
		}
		Option::set($moduleId, 'site_id', trim((string)$request->getPost('site_id')));
		Option::set($moduleId, 'timeout', (string)$timeout);
		Option::set($moduleId, 'person_types', json_encode($map));
		Option::set($moduleId, 'send_properties', implode(', ', Config::parseCodes($sendProperties)));
		Option::set($moduleId, 'sites', json_encode($newSites, JSON_UNESCAPED_SLASHES));
		LocalRedirect($APPLICATION->GetCurPage() . '?mid=' . urlencode($moduleId) . '&lang=' . LANGUAGE_ID);
	}
}

// Backfill (Orderbridge\Backfill): one slice of at most 20 s per click; "Continue" resumes it.
$backfillLines = [];
if ($request->isPost() && check_bitrix_sessid()
	&& ($request->getPost('backfill_start') !== null || $request->getPost('backfill_resume') !== null)) {
	$args = $request->getPost('backfill_resume') !== null
		? ['--resume'] : ['--since', trim((string)$request->getPost('backfill_since'))];
	$collect = function (string $line) use (&$backfillLines) {
		$backfillLines[] = $line;
	};
	\Orderbridge\Backfill::main(array_merge(['options.php'], $args), null, null, null, $collect, $collect, 20.0);
}
$backfillState = \Orderbridge\Backfill::lastState();

$config = Config::load();
$queue = new Queue();
$secretSet = Option::get($moduleId, 'signing_secret', '') !== '';

if ($errors) {
	CAdminMessage::ShowMessage(implode('<br>', $errors));
}
CAdminMessage::ShowNote(Loc::getMessage('ORDERBRIDGE_QUEUE_STATE', [
	'#WAITING#' => $queue->count(),
	'#REJECTED#' => $queue->rejectedCount(),
]));

$tabs = new CAdminTabControl('orderbridge_tabs', [
	['DIV' => 'main', 'TAB' => Loc::getMessage('ORDERBRIDGE_TAB_MAIN'), 'TITLE' => Loc::getMessage('ORDERBRIDGE_TAB_MAIN')],
	['DIV' => 'buyers', 'TAB' => Loc::getMessage('ORDERBRIDGE_TAB_BUYERS'), 'TITLE' => Loc::getMessage('ORDERBRIDGE_TAB_BUYERS_TITLE')],
	['DIV' => 'sites', 'TAB' => Loc::getMessage('ORDERBRIDGE_TAB_SITES'), 'TITLE' => Loc::getMessage('ORDERBRIDGE_TAB_SITES_TITLE')],
]);
$h = 'htmlspecialcharsbx';
?>
<form method="post" action="<?= $h($APPLICATION->GetCurPage()) ?>?mid=<?= urlencode($moduleId) ?>&amp;lang=<?= LANGUAGE_ID ?>">
<?= bitrix_sessid_post() ?>
<?php $tabs->Begin(); $tabs->BeginNextTab(); ?>
	<tr>
		<td width="40%"><?= Loc::getMessage('ORDERBRIDGE_URL') ?></td>
		<td><input type="text" size="50" name="url" value="<?= $h($config->url) ?>" placeholder="https://orderbridge.example.ru"></td>
	</tr>
	<tr>
		<td><?= Loc::getMessage('ORDERBRIDGE_SECRET') ?></td>
		<td><input type="password" size="50" name="signing_secret" value="" autocomplete="new-password"
			placeholder="<?= $secretSet ? $h(Loc::getMessage('ORDERBRIDGE_SECRET_SET')) : 'whsec_…' ?>"></td>
	</tr>
	<tr>
		<td><?= Loc::getMessage('ORDERBRIDGE_SITE_ID') ?></td>
		<td><input type="text" size="30" name="site_id" value="<?= $h($config->siteId) ?>"></td>
	</tr>
	<tr>
		<td><?= Loc::getMessage('ORDERBRIDGE_TIMEOUT') ?></td>
		<td><input type="text" size="5" name="timeout" value="<?= $h((string)$config->timeout) ?>"></td>
	</tr>
	<tr>
		<td><?= Loc::getMessage('ORDERBRIDGE_SEND_PROPERTIES') ?></td>
		<td><input type="text" size="50" name="send_properties" value="<?= $h(implode(', ', $config->sendProperties)) ?>"
			placeholder="ADDRESS, CITY"></td>
	</tr>
<?php $tabs->BeginNextTab(); ?>
	<tr><td colspan="2"><?= Loc::getMessage('ORDERBRIDGE_BUYERS_HINT') ?></td></tr>
<?php foreach ($personTypes as $id => $type): $t = $config->personType($id); $raw = $config->personTypes[$id] ?? []; ?>
	<tr class="heading"><td colspan="2"><?= $h($type['NAME']) ?> [<?= (int)$id ?>, <?= $h($type['LID']) ?>]</td></tr>
	<tr>
		<td width="40%"><?= Loc::getMessage('ORDERBRIDGE_LEGAL') ?></td>
		<td><input type="checkbox" name="person_types[<?= (int)$id ?>][legal]" value="Y"<?= $t['legal'] ? ' checked' : '' ?>></td>
	</tr>
	<?php foreach ($fields as $f): ?>
	<tr>
		<td><?= Loc::getMessage('ORDERBRIDGE_FIELD_' . strtoupper($f)) ?></td>
		<td><input type="text" size="20" name="person_types[<?= (int)$id ?>][<?= $f ?>]"
			value="<?= $h((string)($raw[$f] ?? '')) ?>" placeholder="<?= $h($t[$f] !== '' ? $t[$f] : (in_array($f, ['company', 'inn'], true) ? '' : Loc::getMessage('ORDERBRIDGE_BY_FLAG'))) ?>"></td>
	</tr>
	<?php endforeach; ?>
<?php endforeach; ?>
<?php $tabs->BeginNextTab(); ?>
	<tr><td colspan="2"><?= Loc::getMessage('ORDERBRIDGE_SITES_HINT') ?></td></tr>
<?php foreach ($sites as $lid => $site): $own = $siteSettings[$lid] ?? []; $key = 'sites[' . $h($lid) . ']'; ?>
	<tr class="heading"><td colspan="2"><?= $h($site['NAME']) ?> [<?= $h($lid) ?><?= ($site['SERVER_NAME'] ?? '') !== '' ? ', ' . $h($site['SERVER_NAME']) : '' ?>]</td></tr>
	<tr>
		<td width="40%"><?= Loc::getMessage('ORDERBRIDGE_SITE_ENABLED') ?></td>
		<td><input type="checkbox" name="<?= $key ?>[enabled]" value="Y"<?= ($own['enabled'] ?? true) ? ' checked' : '' ?>></td>
	</tr>
	<tr>
		<td><?= Loc::getMessage('ORDERBRIDGE_URL') ?></td>
		<td><input type="text" size="50" name="<?= $key ?>[url]" value="<?= $h($own['url'] ?? '') ?>" placeholder="<?= $h($config->url) ?>"></td>
	</tr>
	<tr>
		<td><?= Loc::getMessage('ORDERBRIDGE_SECRET') ?></td>
		<td><input type="password" size="50" name="<?= $key ?>[signing_secret]" value="" autocomplete="new-password"
			placeholder="<?= $h(($own['signing_secret'] ?? '') !== '' ? Loc::getMessage('ORDERBRIDGE_SECRET_SET') : Loc::getMessage('ORDERBRIDGE_SECRET_GLOBAL')) ?>"></td>
	</tr>
	<tr>
		<td><?= Loc::getMessage('ORDERBRIDGE_SITE_ID') ?></td>
		<td><input type="text" size="30" name="<?= $key ?>[site_id]" value="<?= $h($own['site_id'] ?? '') ?>" placeholder="<?= $h($config->siteId) ?>"></td>
	</tr>
<?php endforeach; ?>
<?php $tabs->Buttons(); ?>
	<input type="submit" name="save" value="<?= $h(Loc::getMessage('ORDERBRIDGE_SAVE')) ?>" class="adm-btn-save">
<?php $tabs->End(); ?>
</form>
<h3><?= $h(Loc::getMessage('ORDERBRIDGE_BACKFILL')) ?></h3>
<?php foreach ($backfillLines as $line): ?>
	<div><?= $h($line) ?></div>
<?php endforeach; ?>
<form method="post" action="<?= $h($APPLICATION->GetCurPage()) ?>?mid=<?= urlencode($moduleId) ?>&amp;lang=<?= LANGUAGE_ID ?>">
	<?= bitrix_sessid_post() ?>
	<p><?= $h(Loc::getMessage('ORDERBRIDGE_BACKFILL_HINT')) ?></p>
	<label><?= $h(Loc::getMessage('ORDERBRIDGE_BACKFILL_SINCE')) ?>
		<input type="date" name="backfill_since" value="<?= $h(date('Y-m-01')) ?>"></label>
	<input type="submit" name="backfill_start" value="<?= $h(Loc::getMessage('ORDERBRIDGE_BACKFILL_START')) ?>">
	<?php if ($backfillState && empty($backfillState['done'])): ?>
	<input type="submit" name="backfill_resume" value="<?= $h(Loc::getMessage('ORDERBRIDGE_BACKFILL_RESUME', ['#ID#' => (int)$backfillState['last_id']])) ?>">
	<?php endif; ?>
</form>
